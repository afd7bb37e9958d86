//! Lambda for `POST /store/customers/me/addresses`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve(&[functions::http::Route::StoreCreateAddress]).await
}
