//! Lambda for `POST /admin/customers/{id}`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve(&[functions::http::Route::UpdateCustomer]).await
}
