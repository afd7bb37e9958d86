//! Lambda for `DELETE /admin/customer-groups/{id}`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve(&[functions::http::Route::DeleteGroup]).await
}
