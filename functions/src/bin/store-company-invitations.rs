//! Lambda for `GET /store/customers/me/company-invitations`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve(&[functions::http::Route::StoreCompanyInvitations]).await
}
