# netprobe_bpf_skeleton(NAME SOURCE [CLANG_FLAG...]): compile a BPF C program with clang
# (CO-RE, -Wall -Werror, any extra flags such as -DX) and generate NAME.skel.h with
# bpftool; the skeleton embeds the object, so nothing is read from disk at run time.
# Creates target NAME_skel.
find_program(BPF_CLANG clang REQUIRED)
find_program(BPFTOOL bpftool PATHS /usr/sbin /usr/local/sbin REQUIRED)
set(NETPROBE_BPF_OUT_DIR ${CMAKE_BINARY_DIR}/bpf)
# The target architecture for bpf_tracing.h (__TARGET_ARCH_*), from the build host;
# vmlinux.h comes from the build host's own BTF, so both match the machine built on.
set(NETPROBE_BPF_ARCH "" CACHE STRING "__TARGET_ARCH_ value for the BPF programs (empty: the build host's)")
string(TOLOWER "${CMAKE_SYSTEM_PROCESSOR}" _np_cpu)
if(NETPROBE_BPF_ARCH)
  # given
elseif(_np_cpu MATCHES "^(x86_64|amd64|i.86)$")
  set(NETPROBE_BPF_ARCH x86 CACHE STRING "" FORCE)
elseif(_np_cpu MATCHES "^(aarch64|arm64)$")
  set(NETPROBE_BPF_ARCH arm64 CACHE STRING "" FORCE)
elseif(_np_cpu MATCHES "^arm")
  set(NETPROBE_BPF_ARCH arm CACHE STRING "" FORCE)
elseif(_np_cpu MATCHES "^(ppc64le|ppc64|powerpc64le)$")
  set(NETPROBE_BPF_ARCH powerpc CACHE STRING "" FORCE)
elseif(_np_cpu MATCHES "^s390")
  set(NETPROBE_BPF_ARCH s390 CACHE STRING "" FORCE)
elseif(_np_cpu MATCHES "^riscv64$")
  set(NETPROBE_BPF_ARCH riscv CACHE STRING "" FORCE)
elseif(_np_cpu MATCHES "^loongarch64$")
  set(NETPROBE_BPF_ARCH loongarch CACHE STRING "" FORCE)
else()
  message(FATAL_ERROR "BPF: unknown target architecture ${CMAKE_SYSTEM_PROCESSOR} (set NETPROBE_BPF_ARCH)")
endif()
message(STATUS "BPF target architecture: ${NETPROBE_BPF_ARCH}")
file(MAKE_DIRECTORY ${NETPROBE_BPF_OUT_DIR})
set(NETPROBE_VMLINUX_H ${NETPROBE_BPF_OUT_DIR}/vmlinux.h)
set(NETPROBE_VMLINUX_BTF /sys/kernel/btf/vmlinux CACHE FILEPATH "BTF used to generate vmlinux.h")
add_custom_command(OUTPUT ${NETPROBE_VMLINUX_H}
  COMMAND ${BPFTOOL} btf dump file ${NETPROBE_VMLINUX_BTF} format c > ${NETPROBE_VMLINUX_H}.tmp
  COMMAND ${CMAKE_COMMAND} -E rename ${NETPROBE_VMLINUX_H}.tmp ${NETPROBE_VMLINUX_H}
  COMMENT "Generating vmlinux.h from ${NETPROBE_VMLINUX_BTF}")

function(netprobe_bpf_skeleton name src)
  set(obj ${NETPROBE_BPF_OUT_DIR}/${name}.bpf.o)
  set(skel ${NETPROBE_BPF_OUT_DIR}/${name}.skel.h)
  file(GLOB bpf_headers CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/bpf/lib/*.h ${CMAKE_SOURCE_DIR}/bpf/include/netprobe/*.h)
  add_custom_command(OUTPUT ${obj}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -D__TARGET_ARCH_${NETPROBE_BPF_ARCH} -D__BPF__
            -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers ${ARGN}
            -I${NETPROBE_BPF_OUT_DIR} -I${CMAKE_SOURCE_DIR}/bpf/include -I${CMAKE_SOURCE_DIR}/bpf/lib
            -c ${src} -o ${obj}
    DEPENDS ${src} ${bpf_headers} ${NETPROBE_VMLINUX_H}
    COMMENT "BPF ${name}")
  add_custom_command(OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${name}_bpf > ${skel}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${skel}.tmp ${skel}
    DEPENDS ${obj}
    COMMENT "BPF skeleton ${name}")
  add_custom_target(${name}_skel DEPENDS ${skel})
endfunction()
