//! Lambda for `POST /store/customers/me/company-invitations/{id}/decline`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve(&[functions::http::Route::StoreDeclineCompanyInvitation]).await
}
