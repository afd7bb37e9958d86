//! Lambda for `GET /admin/api-keys`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve(&[functions::http::Route::ListApiKeys]).await
}
