//! Cognito trigger PreTokenGeneration V2: Medusa's actor claims on Cognito tokens; see `functions::triggers`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    functions::triggers::serve(functions::triggers::Trigger::PreTokenGeneration).await
}
