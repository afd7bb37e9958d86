//! Lambda for `POST /admin/customers/imports`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve_transfer(&[functions::http::Route::CreateImport]).await
}
