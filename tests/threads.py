import threading

from django.db import connection


def run_in_threads(count, work):
    """Start `count` threads at the same moment; each runs work(index) on its own database connection.
    Returns the results and the exceptions raised, for the test to inspect."""
    barrier = threading.Barrier(count)
    results: list[object] = []
    errors: list[BaseException] = []

    def runner(index):
        try:
            barrier.wait()
            results.append(work(index))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors
