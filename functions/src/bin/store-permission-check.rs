//! Lambda for `POST /store/permissions/check`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve(&[functions::http::Route::StorePermissionCheck]).await
}
