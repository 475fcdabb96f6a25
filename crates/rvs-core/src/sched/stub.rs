//! Temporary: first eligible destination.
use super::*;
#[derive(Debug)]
struct First(SchedulerKind);
impl Scheduler for First {
    fn kind(&self) -> SchedulerKind {
        self.0
    }
    fn schedule(&mut self, d: Dests<'_>, _: &Flow, _: &mut SchedCtx<'_>) -> Option<DestId> {
        d.iter()
            .find(|(_, s)| s.weight > 0 && !s.overloaded)
            .map(|(i, _)| i)
    }
    fn on_change(&mut self, _: Dests<'_>, _: DestChange) {}
}
/// Temporary factory.
pub fn build(kind: SchedulerKind, _: &SchedOptions, _: Dests<'_>) -> Box<dyn Scheduler> {
    Box::new(First(kind))
}
