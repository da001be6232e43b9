//! The `ferry.lb.v1.LoadBalancer` gRPC service: glue between tonic,
//! [`super::convert`] and the [`LbController`].

use ferry_proto::lb_pb as pb;
use tonic::{Request, Response, Status};

use super::controller::LbController;
use super::convert;

pub struct LbService {
    ctl: LbController,
}

impl LbService {
    pub fn new(ctl: LbController) -> Self {
        Self { ctl }
    }
}

#[tonic::async_trait]
impl pb::load_balancer_server::LoadBalancer for LbService {
    async fn set_load_balancer(
        &self,
        req: Request<pb::SetLoadBalancerRequest>,
    ) -> Result<Response<pb::SetLoadBalancerReply>, Status> {
        let req = req.into_inner();
        let spec = convert::spec(
            req.spec
                .ok_or_else(|| Status::invalid_argument("no spec"))?,
        )?;
        let out = self
            .ctl
            .set(spec, &req.operation_id)
            .await
            .map_err(|e| convert::error(&e))?;
        Ok(Response::new(pb::SetLoadBalancerReply {
            changed: out.changed,
            version: out.version,
            backend: out.backend.to_string(),
        }))
    }

    async fn get_load_balancer(
        &self,
        _req: Request<pb::GetLoadBalancerRequest>,
    ) -> Result<Response<pb::LoadBalancerStatus>, Status> {
        Ok(Response::new(convert::status(self.ctl.status())))
    }

    async fn delete_load_balancer(
        &self,
        req: Request<pb::DeleteLoadBalancerRequest>,
    ) -> Result<Response<pb::DeleteLoadBalancerReply>, Status> {
        let op = req.into_inner().operation_id;
        let deleted = self.ctl.delete(&op).await.map_err(|e| convert::error(&e))?;
        Ok(Response::new(pb::DeleteLoadBalancerReply { deleted }))
    }
}
