//! Lambda for `POST /admin/api-keys`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve(&[functions::http::Route::CreateApiKey]).await
}
