//! Lambda for `POST /admin/api-keys/{id}/revoke`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve(&[functions::http::Route::RevokeApiKey]).await
}
