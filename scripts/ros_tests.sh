#!/usr/bin/env bash
# The `ros` tests, one pytest process per module (see the Makefile's ros-test). Runs every module; exits with the
# first failing module's status, 5 when no module collected a test, 0 otherwise.
cd "$(dirname "$0")/.."
result=5
for module in test/ros/test_*.py; do
    status=0
    python -m pytest -m ros "$module" || status=$?
    case $status in
        0) [ "$result" = 5 ] && result=0 ;;
        5) ;;
        *) [ "$result" = 0 ] || [ "$result" = 5 ] && result=$status ;;
    esac
done
exit "$result"
