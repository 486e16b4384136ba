# hearth — the commands a user and CI need. `make deps` installs what is missing from Debian;
# every other target depends on it, so a fresh machine needs nothing by hand.

CARGO ?= cargo
# Debian packages: build (ffmpeg dev libs, clang for bindgen), tests (GStreamer's RTSP server
# with x264 and AAC, ffprobe, chromium for the browser tests, curl for the TLS test).
DEB_PACKAGES := pkg-config clang libclang-dev \
	libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libavfilter-dev libavdevice-dev libswresample-dev \
	ffmpeg \
	python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-tools \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly \
	gstreamer1.0-libav gstreamer1.0-x \
	chromium curl
# `make bench` only: the age CLI (the reference for hearth's encryption and decryption).
BENCH_DEB_PACKAGES := age

.PHONY: deps debs bench-deps build demo test bench clean

deps: debs node_modules/.package-lock.json

debs:
	@scripts/deps.sh $(DEB_PACKAGES)
	@command -v node >/dev/null || scripts/deps.sh nodejs npm

# playwright-core (drives Debian's chromium; it downloads no browser). `npm ci` runs when
# node_modules is missing or older than the lock file, and rewrites this stamp.
node_modules/.package-lock.json: package.json package-lock.json | debs
	npm ci --no-audit --no-fund
	@touch $@

build: deps
	$(CARGO) build --release

# Records the built-in synthetic camera; Ctrl-C stops it.
demo: deps
	$(CARGO) run --release --quiet -- demo

# Everything CI checks. One dev-profile build serves unit tests, integration tests (which run
# the real binary), the bench compile check and the browser tests (target/debug/hearth).
test: deps
	$(CARGO) fmt --check
	$(CARGO) build --all-targets
	$(CARGO) test --all-targets -- --test-threads=2
	node --test tests/browser/

bench-deps: deps
	@scripts/deps.sh $(BENCH_DEB_PACKAGES)

# hearth against the alternatives in one run; prints one markdown table and rewrites
# bench/RESULTS.md. Knobs (environment): see scripts/bench.py.
bench: bench-deps
	$(CARGO) build --release --bins --examples
	/usr/bin/python3 scripts/bench.py

clean:
	$(CARGO) clean
