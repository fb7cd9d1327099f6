"""Tests of the Helm chart and the container image (rendered offline with Helm's Go SDK)."""
