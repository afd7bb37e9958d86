//! Lambda for `GET /admin/customers/{id}/permissions`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve(&[functions::http::Route::CustomerPermissions]).await
}
