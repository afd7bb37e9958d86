//! Lambda for `GET /admin/permission-grants`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve(&[functions::http::Route::ListGrants]).await
}
