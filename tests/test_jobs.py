import threading
import time

from unlearning.jobs import JobRunner, ticking, user_message


def test_jobs_run_one_at_a_time_in_order_with_queue_positions():
    runner = JobRunner()
    gate, order = threading.Event(), []
    first = runner.submit("first", lambda job: (gate.wait(5), order.append(1)))
    second = runner.submit("second", lambda job: order.append(2))
    third = runner.submit("third", lambda job: order.append(3))
    while first.state != "running":
        pass
    assert [runner.position(j) for j in (first, second, third)] == [0, 2, 3]
    gate.set()
    runner.wait(third, 5)
    assert order == [1, 2, 3] and all(j.state == "done" for j in (first, second, third))


def test_a_queued_job_can_be_cancelled_before_it_starts():
    runner = JobRunner()
    gate = threading.Event()
    blocker = runner.submit("block", lambda job: gate.wait(5))
    queued = runner.submit("queued", lambda job: "ran")
    runner.cancel(queued.id)
    gate.set()
    runner.wait(queued, 5)
    assert queued.state == "cancelled" and queued.result is None and runner.wait(blocker, 5).state == "done"


def test_a_failing_job_reports_a_message_and_the_worker_survives():
    runner = JobRunner()
    failed = runner.wait(runner.submit("bad", lambda job: 1 / 0), 5)
    assert failed.state == "failed" and failed.error == "division by zero"
    assert runner.wait(runner.submit("good", lambda job: 42), 5).result == 42


def test_out_of_memory_gets_a_hint():
    message = user_message(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1000 bytes"))
    assert "Out of memory" in message and "LoRA" in message and "batch size" in message


def test_a_real_out_of_memory_error_reaches_the_job_with_a_hint():
    import torch

    def oom(job):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    runner = JobRunner()
    job = runner.wait(runner.submit("big", oom), 5)
    assert job.state == "failed" and job.error.startswith("Out of memory") and "LoRA" in job.error


def test_a_step_with_no_progress_of_its_own_still_moves_the_bar():
    seen = []
    with ticking(lambda fraction, stage: seen.append((fraction, stage)), 0.2, 0.4, "loading", expected_seconds=2.0):
        time.sleep(2.5)
    fractions = [f for f, _ in seen]
    assert len(seen) >= 3 and fractions == sorted(fractions) and fractions[0] == 0.2 and fractions[-1] < 0.4
    assert fractions[-1] > 0.25 and seen[-1][1] == "loading (2 s)"  # 1 - e^-1 of the way after 2 s, seconds shown
    count = len(seen)
    time.sleep(1.2)
    assert len(seen) == count  # the ticker stops with the block
