/*
 * effect-amp's native part: a connected Unix-domain stream socket that can carry file descriptors
 * (SCM_RIGHTS), driven by the event loop (a libuv poll handle: no blocking call, no thread).
 *
 * Node-API only (ABI-stable: one build serves every Node version that has Node-API 8), plus five
 * libuv 1.x functions that Node exports (declared below, so no libuv header is needed).
 *
 * JS API (all fds are plain numbers; errors are negative errno values, never exceptions):
 *   dup(fd)                          -> new fd (close-on-exec) | -errno
 *   close(fd)                        -> 0 | -errno
 *   pipe()                           -> [readFd, writeFd] (close-on-exec) | -errno
 *   open(fd, onReady)                -> handle: takes a duplicate of the connected socket `fd`
 *                                       (made non-blocking); onReady(status, events) is called from
 *                                       the loop when the socket is readable (1) / writable (2)
 *   poll(handle, events)             -> 0 | -errno   (events 0 stops polling)
 *   recv(handle, buffer)             -> [bytes, fd, fd, ...] | -errno   (bytes 0 = end of stream)
 *   send(handle, buffer, fds)        -> bytes written | -errno; fds[i] rides on byte i (Twisted:
 *                                       one descriptor per byte), so min(written, fds.length) went
 *   shutdown(handle)                 -> 0 | -errno   (SHUT_WR)
 *   destroy(handle)                  -> stops polling and closes the socket
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>
#include <node_api.h>

/* --- the libuv 1.x ABI we use (stable across libuv 1.x; Node exports these symbols) ------------- */
typedef struct uv_loop_s uv_loop_t;
typedef struct uv_handle_s uv_handle_t;
typedef struct uv_poll_s uv_poll_t;
typedef void (*uv_poll_cb)(uv_poll_t* handle, int status, int events);
typedef void (*uv_close_cb)(uv_handle_t* handle);
#define AMP_UV_POLL 8 /* uv_handle_type UV_POLL */
extern size_t uv_handle_size(int type);
extern int uv_poll_init(uv_loop_t* loop, uv_poll_t* handle, int fd);
extern int uv_poll_start(uv_poll_t* handle, int events, uv_poll_cb cb);
extern int uv_poll_stop(uv_poll_t* handle);
extern void uv_close(uv_handle_t* handle, uv_close_cb close_cb);
extern void uv_handle_set_data(uv_handle_t* handle, void* data);
extern void* uv_handle_get_data(const uv_handle_t* handle);

#define MAX_FDS_PER_READ 253 /* SCM_MAX_FD on Linux */

typedef struct {
  napi_env env;
  int fd;
  uv_poll_t* poll;
  napi_ref callback;
  napi_async_context async;
} conn_t;

#define CHECK(call)                                                                                \
  do {                                                                                             \
    if ((call) != napi_ok) {                                                                       \
      napi_throw_error(env, NULL, "effect-amp fdpass: " #call " failed");                          \
      return NULL;                                                                                 \
    }                                                                                              \
  } while (0)

static napi_value num(napi_env env, double v) {
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

static int arg_int(napi_env env, napi_value v, int* out) {
  int32_t i;
  if (napi_get_value_int32(env, v, &i) != napi_ok) return 0;
  *out = i;
  return 1;
}

static int dup_cloexec(int fd) {
  int out;
  do out = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  while (out < 0 && errno == EINTR);
  return out;
}

static napi_value js_dup(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !arg_int(env, argv[0], &fd)) return num(env, -EINVAL);
  int out = dup_cloexec(fd);
  return num(env, out < 0 ? -errno : out);
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !arg_int(env, argv[0], &fd)) return num(env, -EINVAL);
  return num(env, close(fd) < 0 && errno != EINTR ? -errno : 0);
}

static napi_value js_pipe(napi_env env, napi_callback_info info) {
  (void)info;
  int fds[2];
#ifdef __linux__
  if (pipe2(fds, O_CLOEXEC) < 0) return num(env, -errno);
#else
  if (pipe(fds) < 0) return num(env, -errno);
  fcntl(fds[0], F_SETFD, FD_CLOEXEC);
  fcntl(fds[1], F_SETFD, FD_CLOEXEC);
#endif
  napi_value out;
  CHECK(napi_create_array(env, &out));
  CHECK(napi_set_element(env, out, 0, num(env, fds[0])));
  CHECK(napi_set_element(env, out, 1, num(env, fds[1])));
  return out;
}

static conn_t* get_conn(napi_env env, napi_value v) {
  void* data = NULL;
  if (napi_get_value_external(env, v, &data) != napi_ok) return NULL;
  conn_t* c = (conn_t*)data;
  return c != NULL && c->fd >= 0 ? c : NULL;
}

/* The (connection, byte array) arguments of recv and send: 0, or the negative errno to return. */
static int conn_and_bytes(napi_env env, size_t argc, napi_value* argv, conn_t** c, void** data, size_t* length) {
  *c = argc < 2 ? NULL : get_conn(env, argv[0]);
  if (*c == NULL) return -EBADF;
  if (napi_get_typedarray_info(env, argv[1], NULL, length, data, NULL, NULL) != napi_ok) return -EINVAL;
  return 0;
}

static void on_poll(uv_poll_t* handle, int status, int events) {
  conn_t* c = (conn_t*)uv_handle_get_data((uv_handle_t*)handle);
  if (c == NULL || c->fd < 0) return;
  napi_env env = c->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, argv[2], result;
  if (napi_get_reference_value(env, c->callback, &cb) == napi_ok && cb != NULL &&
      napi_get_global(env, &recv) == napi_ok) {
    argv[0] = num(env, status);
    argv[1] = num(env, events);
    /* make_callback: runs microtasks afterwards, like any libuv callback into JS; an exception
       thrown by the callback is reported by Node as uncaught */
    napi_make_callback(env, c->async, recv, cb, 2, argv, &result);
  }
  napi_close_handle_scope(env, scope);
}

static void on_closed(uv_handle_t* handle) { free(handle); }

static void conn_stop(conn_t* c) {
  if (c->fd < 0) return;
  if (c->poll != NULL) {
    uv_poll_stop(c->poll);
    uv_handle_set_data((uv_handle_t*)c->poll, NULL);
    uv_close((uv_handle_t*)c->poll, on_closed);
    c->poll = NULL;
  }
  close(c->fd);
  c->fd = -1;
  if (c->callback != NULL) {
    napi_delete_reference(c->env, c->callback);
    c->callback = NULL;
  }
}

static void conn_finalize(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  conn_t* c = (conn_t*)data;
  conn_stop(c);
  if (c->async != NULL) napi_async_destroy(env, c->async);
  free(c);
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || !arg_int(env, argv[0], &fd)) {
    napi_throw_type_error(env, NULL, "open(fd, onReady)");
    return NULL;
  }
  uv_loop_t* loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  int own = dup_cloexec(fd);
  if (own < 0) return num(env, -errno);
  int flags = fcntl(own, F_GETFL);
  if (flags < 0 || fcntl(own, F_SETFL, flags | O_NONBLOCK) < 0) {
    int e = errno;
    close(own);
    return num(env, -e);
  }
  conn_t* c = (conn_t*)calloc(1, sizeof(conn_t));
  uv_poll_t* poll = (uv_poll_t*)calloc(1, uv_handle_size(AMP_UV_POLL));
  if (c == NULL || poll == NULL) {
    free(c);
    free(poll);
    close(own);
    return num(env, -ENOMEM);
  }
  int rc = uv_poll_init(loop, poll, own);
  if (rc != 0) {
    free(c);
    free(poll);
    close(own);
    return num(env, rc);
  }
  c->env = env;
  c->fd = own;
  c->poll = poll;
  uv_handle_set_data((uv_handle_t*)poll, c);
  napi_value name, handle;
  CHECK(napi_create_reference(env, argv[1], 1, &c->callback));
  CHECK(napi_create_string_utf8(env, "effect-amp:unix-fd-socket", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, NULL, name, &c->async));
  CHECK(napi_create_external(env, c, conn_finalize, NULL, &handle));
  return handle;
}

static napi_value js_poll(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int events;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  conn_t* c = argc < 2 ? NULL : get_conn(env, argv[0]);
  if (c == NULL || !arg_int(env, argv[1], &events)) return num(env, -EBADF);
  int rc = events == 0 ? uv_poll_stop(c->poll) : uv_poll_start(c->poll, events, on_poll);
  return num(env, rc);
}

static napi_value js_recv(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  conn_t* c;
  void* data;
  size_t length;
  int bad = conn_and_bytes(env, argc, argv, &c, &data, &length);
  if (bad != 0) return num(env, bad);
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * MAX_FDS_PER_READ)];
  } control;
  struct iovec iov = {data, length};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;
  int flags = MSG_DONTWAIT;
#ifdef MSG_CMSG_CLOEXEC
  flags |= MSG_CMSG_CLOEXEC;
#endif
  ssize_t n;
  do n = recvmsg(c->fd, &msg, flags);
  while (n < 0 && errno == EINTR);
  if (n < 0) return num(env, -errno);
  napi_value out;
  CHECK(napi_create_array(env, &out));
  CHECK(napi_set_element(env, out, 0, num(env, (double)n)));
  uint32_t index = 1;
  for (struct cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int* fds = (int*)CMSG_DATA(cm);
    for (size_t i = 0; i < count; i++) {
      int fd;
      memcpy(&fd, fds + i, sizeof fd);
#ifndef MSG_CMSG_CLOEXEC
      fcntl(fd, F_SETFD, FD_CLOEXEC);
#endif
      CHECK(napi_set_element(env, out, index++, num(env, fd)));
    }
  }
  return out;
}

static ssize_t send_one(int fd, const char* data, size_t length, int passed) {
  struct iovec iov = {(void*)data, length};
  struct msghdr msg;
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int))];
  } control;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (passed >= 0) {
    memset(control.buf, 0, sizeof control.buf);
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    struct cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &passed, sizeof passed);
  }
  int flags = MSG_DONTWAIT;
#ifdef MSG_NOSIGNAL
  flags |= MSG_NOSIGNAL;
#endif
  ssize_t n;
  do n = sendmsg(fd, &msg, flags);
  while (n < 0 && errno == EINTR);
  return n;
}

static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  conn_t* c;
  void* data;
  size_t length;
  int bad = conn_and_bytes(env, argc, argv, &c, &data, &length);
  if (bad != 0) return num(env, bad);
  void* fdData = NULL;
  size_t fdCount = 0;
  if (argc >= 3) {
    napi_valuetype t;
    napi_typeof(env, argv[2], &t);
    if (t == napi_object) {
      napi_typedarray_type type;
      if (napi_get_typedarray_info(env, argv[2], &type, &fdCount, &fdData, NULL, NULL) != napi_ok ||
          type != napi_int32_array) {
        return num(env, -EINVAL);
      }
    }
  }
  const char* bytes = (const char*)data;
  size_t done = 0;
  /* Twisted's _SendmsgMixin: each descriptor rides on one byte of ordinary data */
  while (done < fdCount && done < length) {
    int passed;
    memcpy(&passed, (int*)fdData + done, sizeof passed);
    ssize_t n = send_one(c->fd, bytes + done, 1, passed);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return num(env, (double)done);
      return num(env, done > 0 ? (double)done : -errno);
    }
    done += (size_t)n;
  }
  while (done < length) {
    ssize_t n = send_one(c->fd, bytes + done, length - done, -1);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) break;
      return num(env, done > 0 ? (double)done : -errno);
    }
    done += (size_t)n;
  }
  return num(env, (double)done);
}

static napi_value js_shutdown(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  conn_t* c = argc < 1 ? NULL : get_conn(env, argv[0]);
  if (c == NULL) return num(env, -EBADF);
  return num(env, shutdown(c->fd, SHUT_WR) < 0 ? -errno : 0);
}

static napi_value js_destroy(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  conn_t* c = argc < 1 ? NULL : get_conn(env, argv[0]);
  if (c != NULL) conn_stop(c);
  return num(env, 0);
}

static int define(napi_env env, napi_value exports, const char* name, napi_callback fn) {
  napi_value f;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &f) != napi_ok) return 0;
  return napi_set_named_property(env, exports, name, f) == napi_ok;
}

NAPI_MODULE_INIT() {
  if (!define(env, exports, "dup", js_dup) || !define(env, exports, "close", js_close) ||
      !define(env, exports, "pipe", js_pipe) ||
      !define(env, exports, "open", js_open) || !define(env, exports, "poll", js_poll) ||
      !define(env, exports, "recv", js_recv) || !define(env, exports, "send", js_send) ||
      !define(env, exports, "shutdown", js_shutdown) || !define(env, exports, "destroy", js_destroy)) {
    return NULL;
  }
  return exports;
}
