//! Transfer worker: runs imports and exports started by S3 events; see `functions::worker`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    functions::worker::serve().await
}
