//! Lambda for `POST /store/customers`; see `functions::lambda`. It asks Cognito for the
//! identity's email, which the customer must have.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve_auth(&[functions::http::Route::StoreRegister]).await
}
