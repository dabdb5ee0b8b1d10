"""A step-load shape: add ``--step-users`` users every ``--step-seconds`` up to ``--max-users``, then stop.

    .venv/bin/locust -f loadtest/locustfile.py,loadtest/step_load.py --headless
"""

from locust import LoadTestShape, events
from locust.argument_parser import LocustArgumentParser


@events.init_command_line_parser.add_listener
def _options(parser: LocustArgumentParser) -> None:
    parser.add_argument("--step-users", type=int, default=8, help="users added at each step")
    parser.add_argument("--step-seconds", type=float, default=15, help="length of each step")
    parser.add_argument("--max-users", type=int, default=32, help="users of the last step")


class StepLoad(LoadTestShape):
    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None  # Locust sets the runner before it asks for ticks
        options = self.runner.environment.parsed_options
        assert options is not None  # the shape's options come from Locust's command line
        steps = -(-options.max_users // options.step_users)
        step = int(self.get_run_time() // options.step_seconds)
        if step >= steps:
            return None
        return min(options.max_users, (step + 1) * options.step_users), options.step_users
