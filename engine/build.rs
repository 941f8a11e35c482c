//! Generates the gRPC service from `proto/wagate.proto` (needs `protoc`; tests/ensure-deps.sh
//! installs Debian's protobuf-compiler when it is missing).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/wagate.proto");
    tonic_prost_build::configure()
        .build_transport(false)
        .compile_protos(&["proto/wagate.proto"], &["proto"])?;
    Ok(())
}
