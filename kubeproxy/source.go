package kubeproxy

import (
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// NewSource is a Source on the API server cfg reaches. It reads cfg's
// certificates and keys but does not contact the server.
//
// It speaks to the two API groups it needs with REST clients of its own
// scheme (core/v1 and discovery/v1), not client-go's typed clientset:
// that one's scheme registers every API group of Kubernetes at program
// start, which would double the ebpfnet binary and add milliseconds to
// every command of the CLI, kube-proxy replacement or not.
func NewSource(cfg *rest.Config) (Source, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, discoveryv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return Source{}, err
		}
	}
	// The API server's errors (metav1.Status) come unversioned.
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	codecs := serializer.NewCodecFactory(scheme)

	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return Source{}, err
	}
	core, err := restClient(cfg, hc, corev1.SchemeGroupVersion, "/api", codecs)
	if err != nil {
		return Source{}, err
	}
	discovery, err := restClient(cfg, hc, discoveryv1.SchemeGroupVersion, "/apis", codecs)
	if err != nil {
		return Source{}, err
	}
	all := func(*metav1.ListOptions) {}
	return Source{
		Services:       cache.NewFilteredListWatchFromClient(core, "services", metav1.NamespaceAll, all),
		EndpointSlices: cache.NewFilteredListWatchFromClient(discovery, "endpointslices", metav1.NamespaceAll, all),
		Nodes:          cache.NewFilteredListWatchFromClient(core, "nodes", metav1.NamespaceAll, all),
	}, nil
}

// restClient is a client of API group gv under apiPath, sharing hc.
func restClient(cfg *rest.Config, hc *http.Client, gv schema.GroupVersion, apiPath string, codecs serializer.CodecFactory) (*rest.RESTClient, error) {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &gv
	c.APIPath = apiPath
	c.ContentType = runtime.ContentTypeJSON
	c.NegotiatedSerializer = codecs.WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientForConfigAndClient(c, hc)
	if err != nil {
		return nil, fmt.Errorf("API group %s: %w", gv, err)
	}
	return rc, nil
}
