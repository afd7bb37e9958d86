//! Lambda for `POST /admin/customer-groups`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve(&[functions::http::Route::CreateGroup]).await
}
