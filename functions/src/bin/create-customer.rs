//! Lambda for `POST /admin/customers`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve(&[functions::http::Route::CreateCustomer]).await
}
