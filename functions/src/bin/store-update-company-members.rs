//! Lambda for `POST /store/customers/me/company/members`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve(&[functions::http::Route::StoreUpdateCompanyMembers]).await
}
