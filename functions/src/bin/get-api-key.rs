//! Lambda for `GET /admin/api-keys/{id}`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve(&[functions::http::Route::GetApiKey]).await
}
