//! `hearth-media`: the helper process that runs libav for the hub (motion detection,
//! snapshots, the demo's test pattern), so that `hearth` itself never loads it. Started by
//! `hearth` with one job as its argument; see `hearth::media`.

fn main() -> std::process::ExitCode {
    hearth::media::helper::main()
}
