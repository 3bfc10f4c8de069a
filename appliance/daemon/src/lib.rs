//! `cofferd`: the appliance service. (Skeleton.)
