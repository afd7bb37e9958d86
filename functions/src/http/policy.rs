//! What each route requires of a staff caller, in one place. The match is exhaustive, so a
//! new route does not compile until its policy is declared here; a test walks the route table
//! to prove every staff route names a permission.

use shared::roles::Permission;

use super::Route;

/// The staff permission a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Not a staff route: public, sign-in, or storefront (checked by its own extractor).
    NotStaff,
    /// Any signed-in staff user (their own profile).
    AnyStaff,
    Requires(Permission),
}

const fn requires(resource: &'static str, operation: &'static str) -> Policy {
    Policy::Requires(Permission {
        resource,
        operation,
    })
}

pub fn policy(route: Route) -> Policy {
    use Route::*;
    match route {
        Health
        | OpenApi
        | Jwks
        | AuthProviders
        | SignIn
        | SignInGet
        | Register
        | Callback
        | CallbackPost
        | RefreshToken
        | CreateSession
        | DeleteSession
        | ResetPassword
        | UpdateProvider
        | StoreRegister
        | StoreMe
        | StoreUpdateMe
        | StoreListAddresses
        | StoreCreateAddress
        | StoreGetAddress
        | StoreUpdateAddress
        | StoreDeleteAddress
        | StoreMyCompany
        | StoreCompanyMembers
        | StoreUpdateCompanyMembers
        | StoreLeaveCompany
        | StoreCompanyInvitations
        | StoreAcceptCompanyInvitation
        | StoreDeclineCompanyInvitation
        | StorePermissionCheck => Policy::NotStaff,
        ListCustomers | GetCustomer => requires("customer", "read"),
        CreateCustomer => requires("customer", "create"),
        UpdateCustomer | BatchCustomerGroups => requires("customer", "update"),
        DeleteCustomer => requires("customer", "delete"),
        ListAddresses | GetAddress => requires("customer_address", "read"),
        CreateAddress => requires("customer_address", "create"),
        UpdateAddress => requires("customer_address", "update"),
        DeleteAddress => requires("customer_address", "delete"),
        ListGroups | GetGroup => requires("customer_group", "read"),
        CreateGroup => requires("customer_group", "create"),
        UpdateGroup | BatchGroupCustomers => requires("customer_group", "update"),
        DeleteGroup => requires("customer_group", "delete"),
        ListApiKeys | GetApiKey => requires("api_key", "read"),
        CreateApiKey => requires("api_key", "create"),
        UpdateApiKey | RevokeApiKey => requires("api_key", "update"),
        DeleteApiKey => requires("api_key", "delete"),
        CreateImport => requires("import", "create"),
        ListImports | GetImport | ImportErrors => requires("import", "read"),
        CreateExport => requires("export", "create"),
        ListExports | GetExport | DownloadExport => requires("export", "read"),
        ListCompanies | GetCompany => requires("company", "read"),
        CreateCompany => requires("company", "create"),
        UpdateCompany | BatchCompanyCustomers => requires("company", "update"),
        DeleteCompany => requires("company", "delete"),
        ListGrants | GetGrant | AdminPermissionCheck | CustomerPermissions => {
            requires("permission_grant", "read")
        }
        CreateGrant => requires("permission_grant", "create"),
        DeleteGrant => requires("permission_grant", "delete"),
        ListRoles | GetRole => requires("role", "read"),
        CreateRole => requires("role", "create"),
        UpdateRole => requires("role", "update"),
        DeleteRole => requires("role", "delete"),
        ListUsers | GetUser => requires("user", "read"),
        CreateUser => requires("user", "create"),
        UpdateUser => requires("user", "update"),
        GetMe => Policy::AnyStaff,
    }
}
