//! Cognito trigger PostConfirmation: create or link the confirmed identity's customer; see `functions::triggers`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    functions::triggers::serve(functions::triggers::Trigger::PostConfirmation).await
}
