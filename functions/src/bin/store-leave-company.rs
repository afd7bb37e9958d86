//! Lambda for `DELETE /store/customers/me/company`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve(&[functions::http::Route::StoreLeaveCompany]).await
}
