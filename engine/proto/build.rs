//! Generates the gRPC service from `wagate.proto` (needs `protoc`; tests/ensure-deps.sh installs
//! Debian's protobuf-compiler when it is missing).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=wagate.proto");
    tonic_prost_build::configure()
        .build_transport(false)
        .compile_protos(&["wagate.proto"], &["."])?;
    Ok(())
}
