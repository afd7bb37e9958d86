//! Lambda for `GET /admin/customers/exports`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve_transfer(&[functions::http::Route::ListExports]).await
}
