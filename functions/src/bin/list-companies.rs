//! Lambda for `GET /admin/companies`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve(&[functions::http::Route::ListCompanies]).await
}
