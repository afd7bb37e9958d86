//! Lambda for `POST /auth/{actor}/{provider}/register`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve_auth(&[functions::http::Route::Register]).await
}
