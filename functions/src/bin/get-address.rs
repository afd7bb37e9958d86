//! Lambda for `GET /admin/customers/{id}/addresses/{address_id}`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve(&[functions::http::Route::GetAddress]).await
}
