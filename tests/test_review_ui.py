"""The MLflow review UI, as a person sees it: `mlflow server` over a tiny search's store, in headless Chromium.

Needs Debian's chromium and chromium-driver (.ci/run installs them). Deselect locally with `-m "not ui"`.
"""

from __future__ import annotations

import os
import shutil

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import kedro_session_run, mlflow_server

pytestmark = pytest.mark.ui

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def review_server(ingested_project):
    kedro_session_run(ingested_project, "search")
    with mlflow_server(ingested_project / "mlflow.db", cwd=ingested_project) as (_, url):
        yield url, ingested_project


# Skipped only outside CI: in CI (CI=true) a missing browser is a failure, not a skip.
@pytest.mark.slow
@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER) and os.environ.get("CI") != "true", reason="needs Debian's chromium and chromium-driver")
def test_experiment_page_lists_the_search_with_its_trials_nested(review_server, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, project = review_server
    exp = MlflowClient(f"sqlite:///{project / 'mlflow.db'}").get_experiment_by_name("deepaug_pipeline")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1600,1000"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        # The link the search prints: the model-training view of the experiment, not MLflow 3.17's GenAI default.
        driver.get(f"{url}/#/experiments/{exp.experiment_id}?workflowType=machine_learning")
        wait = WebDriverWait(driver, 60)
        search = wait.until(ec.presence_of_element_located((By.XPATH, "//a[normalize-space()='search']")))
        names = lambda: [a.text for a in driver.find_elements(By.XPATH, "//a[starts-with(normalize-space(), 'trial-')]")]  # noqa: E731
        assert names() == []  # the trials are nested: hidden until their parent is expanded
        row = search.find_element(By.XPATH, "./ancestor::*[@role='row'][1]")
        row.find_element(By.XPATH, ".//button[contains(@data-component-id, 'runnamecellrenderer')]").click()
        wait.until(lambda d: len(names()) == 4)
        assert sorted(names()) == [f"trial-{i}" for i in range(1, 5)]  # conf/test: 4 policy trials
        assert driver.find_elements(By.XPATH, "//a[normalize-space()='baseline-standard-s0']")
        driver.save_screenshot(str(tmp_path / "experiment_page.png"))
        # The search's own numbers on its run, and a trial's reward on its run.
        client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
        runs = client.search_runs([exp.experiment_id])
        parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
        trial = next(r for r in runs if r.data.tags.get("key") == "trial/1")
        for run, metric in ((parent, "best_reward"), (trial, "gain_over_baseline")):
            driver.get(f"{url}/#/experiments/{exp.experiment_id}/runs/{run.info.run_id}?workflowType=machine_learning")
            cell = wait.until(ec.presence_of_element_located((By.XPATH, f"//*[normalize-space()='{metric}']")))
            row = cell.find_element(By.XPATH, "./ancestor::*[self::tr or @role='row'][1]")
            assert str(run.data.metrics[metric])[:6] in row.text, row.text  # the UI shows the full float
    finally:
        driver.quit()
