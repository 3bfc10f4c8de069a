//! `cofferd`: the appliance service. (Skeleton.)

pub mod calendar;
pub mod plan;
pub mod register;
