//! Generates the tonic/prost code with protox: pure Rust, no system `protoc`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/ferry/agent/v1/agent.proto",
        "proto/ferry/transfer/v1/transfer.proto",
        "proto/ferry/lb/v1/lb.proto",
    ];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
