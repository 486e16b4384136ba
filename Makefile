# hearth — the commands a user and CI need. `make deps` installs what is missing from Debian;
# every other target depends on it, so a fresh machine needs nothing by hand.

CARGO ?= cargo
# Debian packages: build (ffmpeg dev libs, clang for bindgen), tests (GStreamer's RTSP server
# with x264 and AAC, ffprobe, chromium for the browser tests, curl for the TLS test; systemd
# for systemd-analyze and dpkg-dev for cargo-deb's dependency scan in the packaging test).
DEB_PACKAGES := pkg-config clang libclang-dev \
	libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libavfilter-dev libavdevice-dev libswresample-dev \
	ffmpeg \
	python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-tools \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly \
	gstreamer1.0-libav gstreamer1.0-x \
	chromium curl faketime python3-venv \
	systemd dpkg-dev \
	mosquitto mosquitto-clients
# cargo-deb builds the .deb (`make deb`); the packaging test inspects one.
CARGO_DEB_VERSION := 3.8.0
# The API fuzzer (PyPI), pinned; see the $(SCHEMATHESIS) rule.
SCHEMATHESIS_VERSION := 4.32.5
SCHEMATHESIS := .venv/schemathesis-$(SCHEMATHESIS_VERSION)/bin/schemathesis

# `sudo make install`: PREFIX for the binary and unit, DESTDIR to stage into another root (then
# no user is created and systemd is not touched). BIN is what gets installed.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
UNITDIR ?= $(PREFIX)/lib/systemd/system
DOCDIR ?= $(PREFIX)/share/doc/hearth
BIN ?= target/release/hearth
# The media helper (libav runs only there), found by hearth in ../libexec/hearth/.
MEDIA_BIN ?= $(dir $(BIN))hearth-media
LIBEXECDIR ?= $(PREFIX)/libexec/hearth
# `make bench` only: the age CLI (the reference for hearth's encryption and decryption).
BENCH_DEB_PACKAGES := age

.PHONY: deps debs cargo-deb bench-deps build demo test bench clean install uninstall deb fuzz

deps: debs cargo-deb node_modules/.package-lock.json $(SCHEMATHESIS)

debs:
	@scripts/deps.sh $(DEB_PACKAGES)
	@command -v node >/dev/null || scripts/deps.sh nodejs npm

# schemathesis (PyPI) for the API fuzz test (tests/schemathesis.rs), in a venv of Debian's
# python3 (PEP 668: no pip into the system). Rebuilt when the pinned version changes.
$(SCHEMATHESIS): | debs
	rm -rf .venv/schemathesis-*
	/usr/bin/python3 -m venv .venv/schemathesis-$(SCHEMATHESIS_VERSION)
	.venv/schemathesis-$(SCHEMATHESIS_VERSION)/bin/pip install --quiet --disable-pip-version-check schemathesis==$(SCHEMATHESIS_VERSION)

cargo-deb:
	@$(CARGO) deb --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-deb --version $(CARGO_DEB_VERSION)

# playwright-core (drives Debian's chromium; it downloads no browser). `npm ci` runs when
# node_modules is missing or older than the lock file, and rewrites this stamp.
node_modules/.package-lock.json: package.json package-lock.json | debs
	npm ci --no-audit --no-fund
	@touch $@

build: deps
	$(CARGO) build --release

# Records the built-in synthetic camera; Ctrl-C stops it.
demo: deps
	$(CARGO) build --release --quiet --bins
	target/release/hearth demo

# Everything CI checks. One dev-profile build serves unit tests, integration tests (which run
# the real binary), the bench compile check and the browser tests (target/debug/hearth).
test: deps
	$(CARGO) fmt --check
	$(CARGO) build --all-targets
	$(CARGO) test --lib --bins --tests --examples -- --test-threads=2
	$(CARGO) test --benches
	node --test tests/browser/

bench-deps: deps
	@scripts/deps.sh $(BENCH_DEB_PACKAGES)

# hearth against the alternatives in one run; prints one markdown table and rewrites
# bench/RESULTS.md. Knobs (environment): see scripts/bench.py.
bench: bench-deps
	$(CARGO) build --release --bins --examples
	/usr/bin/python3 scripts/bench.py

# cargo-fuzz targets (fuzz/, its own workspace: `make test` never builds it). Stable Rust with
# RUSTC_BOOTSTRAP=1 stands in for nightly; no sanitizer (the targets are safe Rust, and it
# halves the build). FUZZ_SECONDS per target: the default 12 s × 5 targets is a one-minute
# smoke run; `make fuzz FUZZ_SECONDS=3600` fuzzes for real. The corpus grows in
# target/fuzz-corpus (not committed); crashes land in fuzz/artifacts/<target>/ and become
# regression tests (see docs/reliability.md).
FUZZ_TARGETS := config range fmp4_scan age_recovery onvif_events
FUZZ_SECONDS ?= 12
FUZZ := RUSTC_BOOTSTRAP=1 cargo fuzz
FUZZ_FLAGS := --sanitizer none --release --debug-assertions --target-dir $(CURDIR)/target/fuzz

fuzz: deps
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	$(FUZZ) build $(FUZZ_FLAGS)
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p target/fuzz-corpus/$$t; \
		echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
		$(FUZZ) run $(FUZZ_FLAGS) $$t target/fuzz-corpus/$$t $$(test -d fuzz/seeds/$$t && echo fuzz/seeds/$$t) -- \
			-max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 || exit 1; \
	done

clean:
	$(CARGO) clean

# Installs the binary, the systemd unit, the example config (only if there is none yet) and
# the data dir; with no DESTDIR also the `hearth` user (debian/postinst, shared with the .deb).
# Build first as yourself (`make build`): this target never runs cargo, so it is safe as root.
install:
	@test -x $(BIN) || { echo "make install: no $(BIN): run 'make build' first (as yourself, not root)"; exit 1; }
	@test -x $(MEDIA_BIN) || { echo "make install: no $(MEDIA_BIN): run 'make build' first"; exit 1; }
	install -D -m 755 $(BIN) $(DESTDIR)$(BINDIR)/hearth
	install -D -m 755 $(MEDIA_BIN) $(DESTDIR)$(LIBEXECDIR)/hearth-media
	install -d -m 755 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR) $(DESTDIR)/etc/hearth
	sed -e 's|/usr/bin/hearth|$(BINDIR)/hearth|' -e 's|/usr/share/doc/hearth|$(DOCDIR)|' \
		systemd/hearth.service > $(DESTDIR)$(UNITDIR)/hearth.service
	chmod 644 $(DESTDIR)$(UNITDIR)/hearth.service
	install -m 644 README.md config.example.toml $(DESTDIR)$(DOCDIR)/
	install -d -m 750 $(DESTDIR)/etc/hearth/secrets $(DESTDIR)/var/lib/hearth
	test -e $(DESTDIR)/etc/hearth/config.toml || install -m 640 config.example.toml $(DESTDIR)/etc/hearth/config.toml
	@if [ -z "$(DESTDIR)" ]; then \
		sh debian/postinst configure; \
		if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
	fi

# Removes what `install` put in place but keeps /etc/hearth and /var/lib/hearth (your config,
# key and recordings) unless PURGE=1.
uninstall:
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl disable --now hearth.service 2>/dev/null || true; fi
	rm -f $(DESTDIR)$(BINDIR)/hearth $(DESTDIR)$(UNITDIR)/hearth.service
	rm -rf $(DESTDIR)$(LIBEXECDIR)
	rm -rf $(DESTDIR)$(DOCDIR)
	@if [ "$(PURGE)" = 1 ]; then \
		echo "rm -rf $(DESTDIR)/etc/hearth $(DESTDIR)/var/lib/hearth"; \
		rm -rf $(DESTDIR)/etc/hearth $(DESTDIR)/var/lib/hearth; \
		if [ -z "$(DESTDIR)" ] && getent passwd hearth >/dev/null; then userdel hearth; fi; \
	else \
		echo "kept $(DESTDIR)/etc/hearth and $(DESTDIR)/var/lib/hearth (config, key, recordings): 'make uninstall PURGE=1' removes them"; \
	fi
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

# A Debian package (target/debian/hearth_*.deb) with the same unit, the example config as a
# conffile, and debian/postinst creating the user. Install it with `sudo apt install ./target/debian/hearth_*.deb`.
deb: deps
	$(CARGO) deb --locked
