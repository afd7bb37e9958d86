//! Lambda for `POST /auth/{actor}/{provider}/update`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve_auth(&[functions::http::Route::UpdateProvider]).await
}
