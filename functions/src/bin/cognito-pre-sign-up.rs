//! Cognito trigger PreSignUp: confirm native sign-ups, link federated sign-ins by verified email;
//! see `functions::triggers`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    functions::triggers::serve_pre_sign_up().await
}
