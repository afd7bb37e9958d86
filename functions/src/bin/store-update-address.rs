//! Lambda for `POST /store/customers/me/addresses/{address_id}`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve(&[functions::http::Route::StoreUpdateAddress]).await
}
