//! `coffer-auth`: who may do what on the appliance, and the record of what
//! they did. (Skeleton; filled in by the service issue.)
