//! Lambda for `GET /admin/customers/{id}/addresses`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve(&[functions::http::Route::ListAddresses]).await
}
