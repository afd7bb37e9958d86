//! Lambda for `POST /admin/companies/{id}/customers`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve(&[functions::http::Route::BatchCompanyCustomers]).await
}
