//! Lambda for `GET /admin/customers/exports/{id}`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve_transfer(&[functions::http::Route::GetExport]).await
}
