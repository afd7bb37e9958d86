//! Lambda for `POST /admin/companies`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve(&[functions::http::Route::CreateCompany]).await
}
