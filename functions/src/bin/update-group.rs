//! Lambda for `POST /admin/customer-groups/{id}`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve(&[functions::http::Route::UpdateGroup]).await
}
