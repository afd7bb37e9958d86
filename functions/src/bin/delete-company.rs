//! Lambda for `DELETE /admin/companies/{id}`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve(&[functions::http::Route::DeleteCompany]).await
}
