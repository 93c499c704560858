def pytest_configure(config):
    config.addinivalue_line(
        "markers", "drill: a fault drill of bench/drills/ at a small scale (`make drills`: full scale)"
    )
