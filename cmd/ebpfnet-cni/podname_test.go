package main

import "testing"

func TestPodName(t *testing.T) {
	for args, want := range map[string]string{
		"IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc": "shop/web-0",
		"K8S_POD_NAME=web-0;K8S_POD_NAMESPACE=shop":                                                "shop/web-0",
		"": "", "IgnoreUnknown=1": "", "K8S_POD_NAME=web-0": "", "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=": "",
		"garbage;;=;K8S_POD_NAMESPACE=a;K8S_POD_NAME=b": "a/b",
	} {
		if got := podName(args); got != want {
			t.Errorf("podName(%q) = %q, want %q", args, got, want)
		}
	}
}
