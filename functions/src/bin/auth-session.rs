//! Lambda for `POST /auth/session`, `DELETE /auth/session`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve(&[
        functions::http::Route::CreateSession,
        functions::http::Route::DeleteSession,
    ])
    .await
}
