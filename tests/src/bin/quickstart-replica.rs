//! The quickstart program (`quickstart::cli::main`, the same code as `cargo run -p quickstart`),
//! built inside the e2e crate so its integration tests can start it as separate processes (Cargo
//! names only a crate's own binaries to its tests): the fleet's replicas (`e2e::fleet`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    quickstart::cli::main().await
}
